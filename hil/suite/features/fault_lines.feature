@epic:power_on_self_check @severity:critical @requires:faultlines @certification
Feature: Hardware fault lines
  The rig drives the terminal's supply monitor and tamper switch through fault
  lines; the power and tamper self-check items must report each fault with its
  documented code and screen message, and pass again once it is released.

  @req:SC-POWER-02
  Scenario: A low supply fails the power item, then passes when restored
    Given the terminal is idle
    When the rig asserts fault line "supply_low"
    And the terminal runs its "power" self-check
    Then the self-check reports fault line "supply_low" with its documented code, screen text and log entry
    When the rig releases fault line "supply_low"
    And the terminal runs its "power" self-check
    Then the "power" self-check passes

  @req:SC-TAMPER-02
  Scenario: An open tamper switch fails the tamper item and locks payments
    Given the terminal is idle
    When the rig asserts fault line "tamper"
    And the terminal runs its "tamper" self-check
    Then the self-check reports fault line "tamper" with its documented code, screen text and log entry
    And a sale is refused because of fault line "tamper"
    When the rig releases fault line "tamper"
    And the terminal runs its "tamper" self-check
    Then the "tamper" self-check passes
