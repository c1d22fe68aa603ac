@epic:card_reader @severity:critical @requires:cards,magstripe @certification
Feature: Card expiry, on both sides of the month it ends
  A card is valid through the last day of its expiry month. The rig makes its test
  cards at run time with an expiry relative to today (last month, this month, next
  month), so the boundary is checked whenever the suite runs, not only while a
  fixture's fixed date lies on the right side of it.

  @req:SC-CARD-01 @req:SC-CARD-07
  Scenario Outline: A chip card expiring this month or next is read; one that expired last month is refused
    Given the terminal is idle
    When the test card "visa-credit" expiring <month> is inserted
    Then <outcome>
    When the card is removed
    Then the terminal is back to idle

    Examples:
      | month      | outcome                                          |
      | last month | the read fails with code "E_CARD_EXPIRED"        |
      | this month | the masked PAN read equals the card profile      |
      | next month | the masked PAN read equals the card profile      |

  @req:SC-CARD-04 @req:SC-CARD-07
  Scenario Outline: A stripe card expiring this month is read; one that expired last month is refused
    Given the terminal is idle
    When the test card "stripe-only" expiring <month> is swiped
    Then <outcome>
    And the terminal is back to idle

    Examples:
      | month      | outcome                                          |
      | last month | the read fails with code "E_CARD_EXPIRED"        |
      | this month | the masked PAN read equals the card profile      |
