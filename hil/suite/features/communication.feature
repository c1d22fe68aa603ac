@epic:communication @severity:critical @requires:host,network @certification
Feature: Communication with the acquirer host
  The comm self-check is an ISO 8583 echo test to the host, through the rig's fault
  path. The rig cuts, slows and resets the link, and checks the terminal's verdict
  against what the host really saw and against the documented codes and screens.
  A sale whose answer never comes must be reversed, exactly once.

  Background:
    Given the terminal is idle
    And the terminal's host timeouts are 1000 ms to connect and 1500 ms to answer, with 1 retry

  @smoke @req:SC-COMM-01
  Scenario: A healthy link passes the comm check with its round trip recorded
    When the terminal runs its "comm" self-check
    Then the "comm" self-check passes
    And the echo round trip is recorded within the documented limit
    And the host saw an echo test from the terminal

  @slow @req:SC-COMM-02
  Scenario: A blackholed host fails the comm check with its timeout code
    Given the terminal's host timeouts are 300 ms to connect and 500 ms to answer, with 1 retry
    And the network blackholes the host
    When the terminal runs its "comm" self-check
    Then the "comm" self-check fails with code "E_COMM_TIMEOUT" within its documented time limit
    And the idle screen shows the fault "E_COMM_TIMEOUT" with its documented text
    And the host saw no echo test from the terminal
    And the terminal still answers on its test port

  @req:SC-COMM-03
  Scenario: A wrong host port fails the comm check with the refused code
    Given the terminal's host port is set to a port where nothing listens
    When the terminal runs its "comm" self-check
    Then the "comm" self-check fails with code "E_COMM_REFUSED" within its documented time limit
    And the idle screen shows the fault "E_COMM_REFUSED" with its documented text

  @req:SC-COMM-04
  Scenario: Latency inside the spec passes
    Given the network adds 150 ms of latency with 20 ms jitter each way
    When the terminal runs its "comm" self-check
    Then the "comm" self-check passes
    And the echo round trip is at least 260 ms
    And the echo round trip is recorded within the documented limit

  @req:SC-COMM-04
  Scenario: Latency beyond the spec fails cleanly
    Given the network adds 650 ms of latency each way
    When the terminal runs its "comm" self-check
    Then the "comm" self-check fails with code "E_COMM_SLOW"
    And the idle screen shows the fault "E_COMM_SLOW" with its documented text
    And the terminal still answers on its test port

  @req:SC-COMM-05
  Scenario: A connection reset while the host answers fails with the reset code
    Given the network resets the connection when the host answers
    When the terminal runs its "comm" self-check
    Then the "comm" self-check fails with code "E_COMM_RESET" within its documented time limit
    And the idle screen shows the fault "E_COMM_RESET" with its documented text

  @slow @req:SC-COMM-07
  Scenario: Once the link heals the next self-check passes
    Given the terminal's host timeouts are 300 ms to connect and 500 ms to answer, with 1 retry
    And the network blackholes the host
    And the terminal runs its "comm" self-check
    And the "comm" self-check fails with code "E_COMM_TIMEOUT"
    When the network is healed
    And the terminal runs its "comm" self-check
    Then the "comm" self-check passes
    And the host saw an echo test from the terminal

  @epic:payments @slow @req:SC-PAY-01
  Scenario: A sale whose answer never comes is reversed exactly once
    Given the terminal's host timeouts are 300 ms to connect and 500 ms to answer, with 1 retry
    And the host never answers sales
    When the terminal makes a sale of 12.34 over the host
    Then the sale fails with code "E_COMM_TIMEOUT"
    And the host acknowledged exactly one reversal of that sale
    And the terminal has no reversal pending
    And a new sale after a power cycle is approved with no further reversal sent

  @epic:payments @slow @nightly @req:SC-PAY-02
  Scenario: A reversal the host does not acknowledge survives a power cut
    Given the terminal's host timeouts are 300 ms to connect and 500 ms to answer, with 1 retry
    And the host never answers sales
    And the host never answers reversals
    When the terminal makes a sale of 5.00 over the host
    Then the sale fails with code "E_COMM_TIMEOUT"
    And the terminal has a reversal pending
    When the power is cut
    And the host answers reversals again
    And the terminal is powered on
    Then the host acknowledged exactly one reversal of that sale
    And the terminal has no reversal pending
