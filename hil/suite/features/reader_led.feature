@epic:card_reader @severity:normal @requires:cards @certification
Feature: Reader LED
  The card reader's LED tells the cardholder what the terminal is doing: green on a
  good read, red on a card error, off once the card is out. The rig checks it as the
  terminal reports it, or as the rig's camera sees it when the rig has one.

  @req:SC-CARD-08
  Scenario: The reader LED turns green on a good read and off once the card is out
    Given the terminal is idle
    When the test card "visa-credit" is inserted
    Then the terminal reads the card within 2.0 seconds
    And the reader LED is green
    When the card is removed
    Then the terminal is back to idle
    And the reader LED is off

  @req:SC-CARD-08
  Scenario: The reader LED turns red on a card error
    Given the terminal is idle
    When the test card "expired" is inserted
    Then the read fails with code "E_CARD_EXPIRED"
    And the terminal shows the documented message for that code
    And the reader LED is red
    When the card is removed
    Then the terminal is back to idle
