@epic:power_on_self_check @severity:critical @requires:faultlines,host @certification
Feature: Hardware self-check items, provoked both ways
  Each hardware item must report the fault the rig provokes through a fault line, with
  its documented code, the exact idle screen and a log entry, and must stop payments
  when the documentation says so; once the rig releases the line the item must pass
  again with figures that agree with what the rig reads itself. An item that reports
  a pass without measuring anything fails here.

  @req:SC-POWER-01 @req:SC-POWER-02 @req:SC-POWER-03 @req:SC-MEM-01 @req:SC-MEM-02 @req:SC-MEM-03 @req:SC-MEM-04 @req:SC-TAMPER-01 @req:SC-TAMPER-02 @req:SC-PERF-01 @req:SC-LOG-01 @req:SC-LOG-03
  Scenario Outline: A fault line makes its item report the fault, then pass once released
    Given the terminal is idle
    When the rig asserts fault line "<line>"
    And the terminal runs its "<item>" self-check
    Then the self-check reports fault line "<line>" with its documented code, screen text and log entry
    And the self-check's figures agree with the rig's own readings
    And the fault on line "<line>" has its documented effect on payments
    When the rig releases fault line "<line>"
    And the terminal runs its "<item>" self-check
    Then the "<item>" self-check passes
    And the self-check's figures agree with the rig's own readings
    And the idle screen shows no fault the rig does not expect

    Examples:
      | line          | item        |
      | supply_low    | power       |
      | battery_low   | power       |
      | flash_corrupt | memory      |
      | flash_full    | memory      |
      | ram_pressure  | memory      |
      | tamper        | tamper      |
      | cpu_load      | performance |
      | system_load   | performance |
      | log_io        | logs        |
      | log_full      | logs        |

  @req:SC-SEC-05 @req:SC-LOG-03
  Scenario: A secure element that does not answer fails the security item until it answers again
    Given the terminal is idle
    When the rig asserts fault line "secure_element"
    And the terminal runs its "security" self-check
    Then the self-check reports fault line "secure_element" with its documented code, screen text and log entry
    And the fault on line "secure_element" has its documented effect on payments
    When the rig releases fault line "secure_element"
    And the terminal runs its "security" self-check
    Then the "security" self-check passes
    And the idle screen shows no fault the rig does not expect

  @req:SC-POWER-04 @req:SC-TAMPER-03 @req:SC-LOG-03
  Scenario: With the fault-line harness unplugged, power and tamper say they could not check
    Given the terminal is idle
    When the rig unplugs the fault-line harness
    And the terminal runs its "power" self-check
    Then the "power" self-check warns with code "E_POWER_UNVERIFIED"
    And the idle screen shows the warning "E_POWER_UNVERIFIED" with its documented text
    And the system log holds the code "E_POWER_UNVERIFIED" from that self-check
    When the terminal runs its "tamper" self-check
    Then the "tamper" self-check warns with code "E_TAMPER_UNVERIFIED"
    And the idle screen shows the warning "E_TAMPER_UNVERIFIED" with its documented text
    And the system log holds the code "E_TAMPER_UNVERIFIED" from that self-check
    When the rig plugs the fault-line harness back
    And the terminal runs its "power" self-check
    Then the "power" self-check passes
    And the self-check's figures agree with the rig's own readings
    When the terminal runs its "tamper" self-check
    Then the "tamper" self-check passes
    And the idle screen shows no fault the rig does not expect
