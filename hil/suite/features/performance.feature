@epic:performance @severity:critical @requires:host,power @certification
Feature: Performance measured by the rig
  Boot time, sale time, CPU and memory are measured by the rig itself: its own clock
  from power-on to the ready event and from request to answer, the terminal process's
  CPU time and resident memory read from /proc of the process the rig started. The
  terminal's memory and performance items must agree with those readings. A soak of
  sales must all be approved, each counted once at the host, with the terminal's memory
  growth bounded (limits: hil/contract/performance.py, docs/performance.md).

  Background:
    Given the terminal is idle

  @req:SC-PERF-03
  Scenario: Boot from power-on to ready stays within the performance contract
    When the rig power-cycles the terminal and times its boot
    Then the boot time measured by the rig is within the performance contract

  @slow @req:SC-PERF-02 @req:SC-PERF-04 @req:SC-PERF-05
  Scenario: A soak of 200 sales stays within the contract and the items agree with the rig
    When the terminal makes 200 sales in a row over the host, the rig reading its memory
    Then every sale of the soak was approved and the host received each exactly once
    And the terminal's memory grew less than the performance contract allows over the soak
    And the terminal's CPU and every sale's wall time over the soak are within the contract
    When the rig reads the terminal process while it runs its "memory" and "performance" items
    Then the terminal process's CPU and memory measured by the rig are within the contract
    And the memory item's RSS agrees with the rig's reading
    And the performance item's CPU time is no more than the rig measured
