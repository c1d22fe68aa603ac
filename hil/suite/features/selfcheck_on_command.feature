@epic:power_on_self_check @severity:critical @certification
Feature: The whole self-check on command
  Run on command, the self-check must tell the same truth as at boot: a pass for every
  item the rig can exercise, the documented "missing channel" code for every item whose
  channel the rig does not wire (run this suite on hil/suite/rigs/sim-bare.toml to
  exercise that path), each failure in the log, and an idle screen that shows exactly
  those faults and nothing else. The firmware item must report the image the rig
  flashed, which the rig reads itself.

  @req:SC-BOOT-02 @req:SC-BOOT-07
  Scenario: A full self-check on command tells the truth about every item
    Given the terminal is idle
    When the terminal runs its full self-check
    Then every item the rig can exercise passes, and every item whose channel it lacks fails with its documented code and a log entry
    And the idle screen shows no fault the rig does not expect

  @epic:firmware @req:SC-FW-01
  Scenario: The firmware item reports the image the rig flashed
    Given the terminal is idle
    When the terminal runs its "firmware" self-check
    Then the "firmware" self-check reports the image the rig flashed
    And the self-check's figures agree with the rig's own readings
