@epic:security @severity:critical @certification
Feature: Admin password policy, login lockout and biometric verification
  The rig makes up the passwords it sends and counts the logins itself; it judges
  each answer against the documented policy and lockout limit, and each biometric
  verdict against what it put on the sensor. No password or template it sends may
  appear in the terminal's log or in the report.

  @req:SC-SEC-01 @req:SC-SEC-02 @req:SC-SEC-04
  Scenario: The factory default warns; weak passwords are refused by rule; a strong one is taken
    Given the terminal is idle
    And the rig has reset the admin password to the factory default
    When the terminal runs its "security" self-check
    Then the "security" self-check warns with code "E_SEC_DEFAULT_PASSWORD"
    When the rig changes the admin password to one "factory default"
    Then the change is refused with the policy's code for one "factory default"
    When the rig changes the admin password to one "too short"
    Then the change is refused with the policy's code for one "too short"
    When the rig changes the admin password to one "too long"
    Then the change is refused with the policy's code for one "too long"
    When the rig changes the admin password to one "without a lower-case letter"
    Then the change is refused with the policy's code for one "without a lower-case letter"
    When the rig changes the admin password to one "without an upper-case letter"
    Then the change is refused with the policy's code for one "without an upper-case letter"
    When the rig changes the admin password to one "without a digit"
    Then the change is refused with the policy's code for one "without a digit"
    When the rig changes the admin password to one "without a symbol"
    Then the change is refused with the policy's code for one "without a symbol"
    And the admin password is still the one the rig set
    When the rig changes the admin password to a strong one
    Then the change is accepted
    And the admin password the rig set logs in and the one before it does not
    When the rig changes the admin password to one "a recent one"
    Then the change is refused with the policy's code for one "a recent one"
    When the terminal runs its "security" self-check
    Then the "security" self-check passes
    And no password the rig sent appears in the terminal's log

  @req:SC-SEC-03 @req:SC-SEC-04 @slow
  Scenario: The admin login locks exactly at the documented attempt and opens after the period
    Given the terminal is idle
    And the rig has set an admin password of its own
    When the rig logs in with a wrong admin password one time short of the lockout limit
    Then each of those logins is refused as a wrong password
    When the rig logs in with the right admin password
    Then the login is accepted
    When the rig logs in with a wrong admin password as many times as the lockout limit
    Then the logins before the limit are refused as wrong and the one at the limit locks
    When the rig logs in with the right admin password
    Then the login is refused because the admin login is locked
    When the rig waits out the documented lockout period
    And the rig logs in with the right admin password
    Then the login is accepted
    And no password the rig sent appears in the terminal's log

  @req:SC-SEC-06 @req:SC-SEC-07 @requires:biometrics
  Scenario Outline: A <modality> matches its enrolment and nothing else
    Given the terminal is idle
    And the rig has enrolled the <modality> of "alice"
    When the rig presents the <modality> of "alice"
    And the terminal verifies the <modality> of user "alice"
    Then the verdict is "OK", as the rig expects from what it presented
    When the rig presents the <modality> of "bob"
    And the terminal verifies the <modality> of user "alice"
    Then the verdict is "E_BIO_NO_MATCH", as the rig expects from what it presented
    When the rig presents a spoofed <modality> of "alice"
    And the terminal verifies the <modality> of user "alice"
    Then the verdict is "E_BIO_SPOOF", as the rig expects from what it presented
    When the rig presents the <modality> of "mallory"
    And the terminal verifies the <modality> of user "mallory"
    Then the verdict is "E_BIO_NOT_ENROLLED", as the rig expects from what it presented

    Examples:
      | modality    |
      | fingerprint |
      | face        |
