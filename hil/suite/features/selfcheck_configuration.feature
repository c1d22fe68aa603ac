@epic:power_on_self_check @severity:critical @requires:host @certification
Feature: Self-check items that follow the terminal's configuration
  Configuration can leave a terminal unable to take a payment: every interface
  disabled, no transaction type permitted, its terminal ID withdrawn. The items must
  say so with their documented code, message and screen, and the terminal must then
  refuse to pay, with nothing reaching the host.

  @epic:payment_interfaces @req:SC-IFACE-01 @req:SC-IFACE-02
  Scenario: With every payment interface disabled the item fails and sales are refused
    Given the terminal is idle
    And for this scenario the configuration key "interfaces.card" is set to "false"
    And for this scenario the configuration key "interfaces.qr" is set to "false"
    And for this scenario the configuration key "interfaces.nfc" is set to "false"
    When the terminal runs its "payment_interfaces" self-check
    Then the "payment_interfaces" self-check fails with code "E_IFACE_NONE"
    And the self-check message is exactly "no payment interface both enabled and permitted (all interfaces disabled)"
    And the idle screen shows the fault "E_IFACE_NONE" with its documented text
    And the system log holds the code "E_IFACE_NONE" from that self-check
    And a sale is refused with code "E_PAY_INTERFACE_DISABLED" and nothing reaches the host

  @epic:payment_interfaces @req:SC-IFACE-02
  Scenario: With no transaction type permitted the item fails and sales are refused
    Given the terminal is idle
    And for this scenario the configuration key "permissions.sale" is set to "false"
    And for this scenario the configuration key "permissions.refund" is set to "false"
    When the terminal runs its "payment_interfaces" self-check
    Then the "payment_interfaces" self-check fails with code "E_IFACE_NONE"
    And the self-check message is exactly "no payment interface both enabled and permitted (no transaction type permitted)"
    And the idle screen shows the fault "E_IFACE_NONE" with its documented text
    And a sale is refused with code "E_PAY_NOT_PERMITTED" and nothing reaches the host

  @epic:payment_interfaces @req:SC-IFACE-01 @req:SC-IFACE-02
  Scenario: One interface enabled and permitted is enough for the item to pass
    Given the terminal is idle
    And for this scenario the configuration key "interfaces.card" is set to "false"
    And for this scenario the configuration key "interfaces.qr" is set to "false"
    And for this scenario the configuration key "permissions.sale" is set to "false"
    When the terminal runs its "payment_interfaces" self-check
    Then the "payment_interfaces" self-check passes
    And the self-check message is exactly "usable interfaces: nfc"
    And the idle screen shows no fault the rig does not expect
    And a sale is refused with code "E_PAY_INTERFACE_DISABLED" and nothing reaches the host

  @epic:terminal_identity @req:SC-TID-03
  Scenario: A withdrawn terminal ID fails the terminal_id item, signs nothing on and pays nothing
    Given the terminal is idle
    And for this scenario the configuration key "terminal_id" is set to ""
    When the terminal runs its "terminal_id" self-check
    Then the "terminal_id" self-check fails with code "E_TID_INVALID"
    And the idle screen shows the fault "E_TID_INVALID" with its documented text
    And the system log holds the code "E_TID_INVALID" from that self-check
    And the host saw no sign-on from the terminal
    And a sale is refused with code "E_TID_INVALID" and nothing reaches the host
