@epic:data_sync @severity:critical @requires:host,network @certification
Feature: Parameter and key download
  At every boot the terminal downloads its parameters and working keys from the host.
  Its parameter digest must equal the host's; a download cut half-way must leave the
  old parameters in force and be reported, never half-applied.

  Background:
    Given the terminal is idle
    And the terminal's host timeouts are 1000 ms to connect and 1500 ms to answer, with 1 retry

  @smoke @req:SC-SYNC-01
  Scenario: The terminal's parameters match the host's after a sync
    When the terminal runs its "data_sync" self-check
    Then the "data_sync" self-check passes
    And the terminal's parameter digest equals the host's
    And the host saw the whole parameter download and a key download

  @req:SC-SYNC-02
  Scenario: A new parameter set on the host reaches the terminal
    Given the host offers parameter set "params-v2.json"
    When the terminal syncs with the host over the test port
    Then the terminal's parameter digest equals the host's
    And the terminal reports parameter version "2024.12.01"

  @req:SC-SYNC-03
  Scenario: An interrupted download keeps the old parameters and reports it
    Given the terminal has synced the host's parameters
    And the host offers parameter set "params-v2.json"
    And the network cuts the link after 600 bytes from the host
    When the terminal runs its "data_sync" self-check
    Then the "data_sync" self-check fails with code "E_SYNC_INTERRUPTED"
    And the terminal still holds the parameters it had before
    And the terminal's parameter digest differs from the host's
    And the idle screen shows the fault "E_SYNC_INTERRUPTED" with its documented text
