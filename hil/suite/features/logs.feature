@epic:logs @severity:normal @certification
Feature: The system log store rotates when full and purges by age
  The log store keeps a documented number of entries and a documented retention
  period. The rig fills it and ages it, reads it back over the test port and checks
  that the newest entries survive in order, the oldest go, and the logs item stays a
  pass that records what happened.

  @req:SC-LOG-04
  Scenario: A full log rotates its oldest entries out and keeps the newest in order
    Given the terminal is idle
    When the rig writes marker entries past the log's documented capacity
    Then the system log keeps the newest entries in order within its documented capacity
    And the system log records the rotation
    When the terminal runs its "logs" self-check
    Then the "logs" self-check passes
    And the "logs" self-check reports the rotation

  @req:SC-LOG-05
  Scenario: Entries older than the retention period are purged, younger ones kept
    Given the terminal is idle
    And the rig sets the log retention period to 10 seconds
    When the rig writes marker entries "aged"
    And the rig waits out the log retention period
    And the rig writes marker entries "fresh"
    And the terminal runs its "logs" self-check
    Then the "logs" self-check passes
    And the system log holds no "aged" entry and every "fresh" one, and records the purge

  @req:SC-LOG-06 @requires:faultlines @slow
  Scenario: Entries written while the log partition fails reach flash once it works again
    Given the terminal is idle
    When the rig asserts fault line "log_io"
    And the rig writes marker entries "held"
    And the rig releases fault line "log_io"
    And the terminal runs its "logs" self-check
    Then the "logs" self-check passes
    When the power is cut
    And the terminal is powered on
    Then the system log holds every "held" entry
