@epic:power_on_self_check @severity:critical @certification
Feature: Boot self-check
  At every power-on the terminal checks itself and reports each item truthfully:
  a pass where the rig can show the item works, its documented failure code
  where the rig wires no channel for it. The rig verifies the identity and the
  screen independently of the terminal's own verdict.

  @smoke @req:SC-BOOT-01 @req:SC-BOOT-02
  Scenario: A healthy build boots and every self-check item tells the truth
    Given the terminal is powered off
    When the terminal is powered on
    Then it boots within the self-check time budget
    And every self-check item reports a result
    And every self-check item whose channel the rig provides passes
    And every self-check item whose channel the rig lacks fails with its documented code
    And the system log holds the code of every failed item

  @smoke @req:SC-BOOT-03
  Scenario: The terminal reports the identity of the rig file and the firmware image
    Given the terminal is idle
    When the rig reads the terminal's device info
    Then the model, serial number, terminal ID and merchant ID equal the rig file
    And the firmware version equals the firmware image

  @req:SC-BOOT-04
  Scenario: The display shows the self-check, then the idle screen
    Given the terminal is powered off
    When the terminal is powered on
    Then the display showed the self-check message during the self-check
    And the display now shows the idle screen

  @req:SC-BOOT-05
  Scenario: A reboot runs the self-check again
    Given the terminal is idle
    When the terminal is rebooted over the test port
    Then it reports boot reason "reboot"
    And the self-check ran again over every item

  @req:SC-BOOT-06
  Scenario: A hard power cut keeps the configuration and boots cleanly
    Given the terminal is idle
    And the configuration key "comm.response_timeout_ms" is set to "45000"
    When the power is cut
    And the terminal is powered on
    Then it reports boot reason "power_loss"
    And the configuration key "comm.response_timeout_ms" still equals "45000"
    And every self-check item reports a result
    And it boots within the self-check time budget
