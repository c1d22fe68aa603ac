@epic:terminal_identity @severity:critical @requires:host @certification
Feature: Terminal identity
  At sign-on the host checks that the terminal ID belongs to the device signing on.
  A TID already bound to another device is refused, and the terminal must say so
  with its conflict code and screen; a unique TID signs on and passes.

  Background:
    Given the terminal is idle
    And the terminal's host timeouts are 1000 ms to connect and 1500 ms to answer, with 1 retry

  @smoke @req:SC-TID-01
  Scenario: A unique terminal ID signs on and passes
    When the terminal runs its "terminal_id" self-check
    Then the "terminal_id" self-check passes
    And the host accepted a sign-on of the terminal's TID from its serial number

  @req:SC-TID-02
  Scenario: A terminal ID bound to another device is refused and shown
    Given the host binds the terminal's TID to another device "SIM8A9999999"
    When the terminal runs its "terminal_id" self-check
    Then the "terminal_id" self-check fails with code "E_TID_CONFLICT"
    And the host refused the sign-on with response code "97"
    And the idle screen shows the fault "E_TID_CONFLICT" with its documented text
