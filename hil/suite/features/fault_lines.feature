@epic:power_on_self_check @severity:critical @requires:faultlines
Feature: Hardware fault lines
  The rig drives the terminal's supply monitor and tamper switch through fault
  lines; the power and tamper self-check items must report each fault with its
  documented code and screen message, and pass again once it is released.

  Scenario: A low supply fails the power item, then passes when restored
    Given the terminal is idle
    When the rig asserts fault line "supply_low"
    And the terminal runs its self-check of "power"
    Then it reports the fault of line "supply_low" with its code and screen message
    When the rig releases fault line "supply_low"
    And the terminal runs its self-check of "power"
    Then the self-check of "power" passes

  Scenario: An open tamper switch fails the tamper item and locks payments
    Given the terminal is idle
    When the rig asserts fault line "tamper"
    And the terminal runs its self-check of "tamper"
    Then it reports the fault of line "tamper" with its code and screen message
    And a sale is refused because of fault line "tamper"
    When the rig releases fault line "tamper"
    And the terminal runs its self-check of "tamper"
    Then the self-check of "tamper" passes
