@epic:card_reader @severity:critical @requires:cards @certification
Feature: Card reader
  The rig puts a known test card in front of the terminal (inserted into the chip
  reader, tapped on the antenna, swiped through the head) and checks independently
  that the terminal read exactly that card: the masked PAN equals the card profile,
  the expected application was selected, failures carry their documented code and
  screen message, and the terminal is back to idle afterwards.

  @smoke @req:SC-CARD-01
  Scenario: A chip card is read and equals the inserted profile
    Given the terminal is idle
    When the test card "visa-credit" is inserted
    Then the terminal reads the card within 2.0 seconds
    And the read reports entry mode "chip"
    And the masked PAN read equals the card profile
    And the terminal selected the card's preferred application
    And the APDU trace is attached without cardholder data
    When the card is removed
    Then the terminal is back to idle

  @req:SC-CARD-02
  Scenario: The card's transaction counter goes up with every read
    Given the terminal is idle
    When the test card "visa-credit" is inserted
    Then the terminal reads the card within 2.0 seconds
    When the card is removed
    And the test card "visa-credit" is inserted again
    Then the ATC went up by one for each read

  @req:SC-CARD-01
  Scenario: A UnionPay card with two applications selects the preferred one
    Given the terminal is idle
    When the test card "unionpay-debit" is inserted
    Then the terminal reads the card within 2.0 seconds
    And the masked PAN read equals the card profile
    And the terminal selected the card's preferred application
    When the card is removed
    Then the terminal is back to idle

  @req:SC-CARD-01
  Scenario: A T=0 chip card is read through GET RESPONSE
    Given the terminal is idle
    When the test card "mastercard-debit" is inserted
    Then the terminal reads the card within 2.0 seconds
    And the masked PAN read equals the card profile
    And the terminal selected the card's preferred application
    And the APDU trace is attached without cardholder data

  @req:SC-CARD-03
  Scenario: A contactless card is read on a tap
    Given the terminal is idle
    When the test card "visa-credit" is tapped
    Then the terminal reads the card within 2.0 seconds
    And the read reports entry mode "contactless"
    And the masked PAN read equals the card profile
    And the terminal selected the card's preferred application
    And the terminal is back to idle

  @req:SC-CARD-04
  Scenario: A magnetic stripe card is read on a swipe
    Given the terminal is idle
    When the test card "stripe-only" is swiped
    Then the terminal reads the card within 1.0 seconds
    And the read reports entry mode "magstripe"
    And the masked PAN read equals the card profile
    And the terminal is back to idle

  @req:SC-CARD-04
  Scenario: A swipe with a bad LRC asks for another swipe
    Given the terminal is idle
    When the test card "stripe-only" is swiped with a bad LRC
    Then the read fails with code "E_SWIPE_READ"
    And the terminal shows the documented message for that code
    And the terminal is back to idle
    When the test card "stripe-only" is swiped
    Then the terminal reads the card within 1.0 seconds

  @req:SC-CARD-04
  Scenario: A partial swipe asks for another swipe
    Given the terminal is idle
    When the test card "stripe-only" is swiped partially
    Then the read fails with code "E_SWIPE_READ"
    And the terminal shows the documented message for that code
    And the terminal is back to idle

  @req:SC-CARD-05
  Scenario: A chip card swiped is sent to the chip reader
    Given the terminal is idle
    When the test card "visa-credit" is swiped
    Then the read fails with code "E_USE_CHIP"
    And the terminal shows the documented message for that code
    And the terminal is back to idle

  @req:SC-CARD-06
  Scenario: A card pulled out mid-transaction gives a clear error
    Given the terminal is idle
    When the test card "slow-visa" is inserted
    And the card is removed during the transaction
    Then the read fails with code "E_CARD_REMOVED"
    And the terminal shows the documented message for that code
    And the terminal is back to idle

  @req:SC-CARD-07
  Scenario Outline: A card the terminal cannot use gives its documented error
    Given the terminal is idle
    When the test card "<card>" is inserted
    Then the read fails with code "<code>"
    And the terminal shows the documented message for that code
    When the card is removed
    Then the terminal is back to idle

    Examples:
      | card           | code           |
      | mute           | E_CARD_MUTE    |
      | no-payment-app | E_CARD_NO_APP  |
      | expired        | E_CARD_EXPIRED |
      | pin-blocked    | E_PIN_BLOCKED  |
      | declined       | E_CARD_DECLINED |

  @requires:cards,faultlines @req:SC-READER-02
  Scenario: A reader power cut is reported by the self-check and stops payments
    Given the terminal is idle
    When the rig cuts the card reader's power
    And the terminal runs its "card_reader" self-check
    Then the self-check reports fault line "reader_power" with its documented code, screen text and log entry
    And a sale is refused because of fault line "reader_power"
    And a card inserted now is not read
    When the rig restores the card reader's power
    And the terminal runs its "card_reader" self-check
    Then the "card_reader" self-check passes
