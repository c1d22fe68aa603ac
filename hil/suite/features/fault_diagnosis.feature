@epic:fault_diagnosis @severity:critical @certification @requires:faultlines
Feature: Fault diagnosis: the payment application's watchdog
  When the payment application crashes or hangs, the terminal's watchdog notices it
  within its documented time, logs the fault with its code, shows it, restarts the
  application, and the terminal takes payments again. Without a fault the watchdog
  never fires. The rig provokes the fault with a fault line and judges on its own
  clock, from the log read over the test port, the screens and a real sale.

  @req:SC-DIAG-01 @req:SC-DIAG-02 @requires:host
  Scenario Outline: The watchdog restarts a payment application that <fault>
    Given the terminal is idle
    When the rig makes the payment application fail with fault line "<line>"
    Then the watchdog restarted it within the documented recovery window
    And the system log holds the application fault code followed by the restart
    And the display showed the application fault, then the idle screen
    And the payment application was restarted exactly once
    When the terminal makes a sale of 1.00 over the host
    Then the sale is approved and the host's journal holds exactly 1.00

    Examples:
      | fault   | line      |
      | crashes | app_crash |
      | hangs   | app_hang  |

  @req:SC-DIAG-03
  Scenario: Without a fault the watchdog never fires
    Given the terminal is idle
    When the rig watches the terminal for two watchdog timeouts
    Then the watchdog never fired and the application was never restarted
