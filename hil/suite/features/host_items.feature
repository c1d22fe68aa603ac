@epic:communication @severity:critical @requires:host,network @certification
Feature: Host self-check items, every documented code provoked
  The comm, terminal_id and data_sync items each have several ways to fail. The rig
  provokes each one at the host or on the link, checks the documented code, screen
  and log entry, and counts at the host what the terminal really sent: a terminal
  that retries less or more than configured, or gives up before its timeouts ran
  out, fails as surely as one that waits too long.

  Background:
    Given the terminal is idle
    And the terminal's host timeouts are 1000 ms to connect and 1000 ms to answer, with 1 retry

  @req:SC-COMM-06
  Scenario: An echo the host answers with a refusal code fails comm as a bad host message
    Given the host answers "echo" requests with response code "96"
    When the terminal runs its "comm" self-check
    Then the "comm" self-check fails with code "E_COMM_MALFORMED" within its documented time limit
    And the idle screen shows the fault "E_COMM_MALFORMED" with its documented text
    And the system log holds the code "E_COMM_MALFORMED" from that self-check
    And the host received one "echo" request for each attempt the terminal's retries allow

  @req:SC-COMM-06
  Scenario: An echo answered with garbage fails comm as a bad host message
    Given the host answers "echo" requests with a malformed message
    When the terminal runs its "comm" self-check
    Then the "comm" self-check fails with code "E_COMM_MALFORMED" within its documented time limit
    And the idle screen shows the fault "E_COMM_MALFORMED" with its documented text

  @req:SC-COMM-09
  Scenario: A host address no connection can reach fails comm with the connect code
    Given the terminal's host address is set to one no connection can reach
    When the terminal runs its "comm" self-check
    Then the "comm" self-check fails with code "E_COMM_CONNECT" within its documented time limit
    And the idle screen shows the fault "E_COMM_CONNECT" with its documented text
    And the system log holds the code "E_COMM_CONNECT" from that self-check

  @req:SC-COMM-02 @req:SC-COMM-10
  Scenario: A host that never answers is tried once per retry, for no less than the timeouts
    Given the terminal's host timeouts are 300 ms to connect and 250 ms to answer, with 2 retries
    And the host never answers "echo" requests
    When the terminal runs its "comm" self-check
    Then the "comm" self-check fails with code "E_COMM_TIMEOUT" within its documented time limit
    And the "comm" self-check gave up no sooner than every attempt's response timeout allows
    And the host received one "echo" request for each attempt the terminal's retries allow

  @epic:terminal_identity @req:SC-TID-04
  Scenario: A sign-on the host refuses fails terminal_id with the refused code
    Given the host answers "sign_on" requests with response code "05"
    When the terminal runs its "terminal_id" self-check
    Then the "terminal_id" self-check fails with code "E_TID_REFUSED"
    And the host refused the sign-on with response code "05"
    And the idle screen shows the fault "E_TID_REFUSED" with its documented text
    And the system log holds the code "E_TID_REFUSED" from that self-check

  @epic:terminal_identity @req:SC-TID-04 @req:SC-COMM-10
  Scenario: A sign-on that never gets an answer fails terminal_id, after every retry
    Given the terminal's host timeouts are 300 ms to connect and 250 ms to answer, with 1 retry
    And the host never answers "sign_on" requests
    When the terminal runs its "terminal_id" self-check
    Then the "terminal_id" self-check fails with code "E_TID_SIGNON_FAILED" within its documented time limit
    And the "terminal_id" self-check gave up no sooner than every attempt's response timeout allows
    And the host received one "sign_on" request for each attempt the terminal's retries allow
    And the idle screen shows the fault "E_TID_SIGNON_FAILED" with its documented text

  @epic:data_sync @req:SC-SYNC-04
  Scenario: A parameter download that arrives damaged keeps the old parameters
    Given the terminal has synced the host's parameters
    And the host offers parameter set "params-v2.json"
    And the host corrupts the data of its "parameter_download" answers
    When the terminal runs its "data_sync" self-check
    Then the "data_sync" self-check fails with code "E_SYNC_DIGEST"
    And the terminal still holds the parameters it had before
    And the idle screen shows the fault "E_SYNC_DIGEST" with its documented text
    And the system log holds the code "E_SYNC_DIGEST" from that self-check

  @epic:data_sync @req:SC-SYNC-05
  Scenario: A parameter download the host refuses keeps the old parameters
    Given the terminal has synced the host's parameters
    And the host offers parameter set "params-v2.json"
    And the host answers "parameter_download" requests with response code "30"
    When the terminal runs its "data_sync" self-check
    Then the "data_sync" self-check fails with code "E_SYNC_REFUSED"
    And the terminal still holds the parameters it had before
    And the idle screen shows the fault "E_SYNC_REFUSED" with its documented text

  @epic:data_sync @req:SC-SYNC-05
  Scenario: A key download the host refuses fails data_sync with the key code
    Given the host answers "key_download" requests with response code "96"
    When the terminal runs its "data_sync" self-check
    Then the "data_sync" self-check fails with code "E_SYNC_KEYS"
    And the idle screen shows the fault "E_SYNC_KEYS" with its documented text
    And the system log holds the code "E_SYNC_KEYS" from that self-check

  @epic:data_sync @req:SC-SYNC-05
  Scenario: Working keys whose check values do not match fail data_sync with the key code
    Given the host corrupts the data of its "key_download" answers
    When the terminal runs its "data_sync" self-check
    Then the "data_sync" self-check fails with code "E_SYNC_KEYS"
    And the idle screen shows the fault "E_SYNC_KEYS" with its documented text

  @epic:payments @req:SC-PAY-01 @req:SC-PAY-03
  Scenario: A sale the host never answers fails no sooner than its timeout, sent once and reversed once
    Given the host never answers "sale" requests
    When the terminal makes a sale of 1.00 over the host
    Then the sale fails with code "E_COMM_TIMEOUT"
    And the sale gave up no sooner than the terminal's response timeout
    And the host received that sale exactly once
    And the host acknowledged exactly one reversal of that sale
    And the terminal has no reversal pending
