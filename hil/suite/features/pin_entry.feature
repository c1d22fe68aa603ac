@epic:card_reader @severity:critical @requires:keypad @certification
Feature: PIN entry
  The terminal asks for the cardholder's PIN and the rig's keypad types it (the test
  port on the sim, a key actuator or a person on a bench). The terminal must take
  exactly the digits typed, say only how many, and keep them out of its log; the rig
  never writes them either: the PIN comes from the card profile, not from this text.

  @req:SC-PIN-01
  Scenario: A PIN typed at the prompt is taken, counted and never logged
    Given the terminal is idle
    When the cardholder enters the PIN of card "visa-credit" at the prompt
    Then the terminal took a PIN as long as the card's
    And the terminal's log holds the PIN length of card "visa-credit", never its digits

  @req:SC-PIN-02
  Scenario: A PIN entry the cardholder cancels ends with its code
    Given the terminal is idle
    When the cardholder types the PIN of card "visa-credit" then cancels
    Then the PIN entry ends with code "E_PIN_CANCELLED"
    And the display now shows the idle screen

  @req:SC-PIN-02
  Scenario: A PIN nobody types times out
    Given the terminal is idle
    When the terminal asks for a PIN and nobody types within 300 ms
    Then the PIN entry ends with code "E_PIN_TIMEOUT"
