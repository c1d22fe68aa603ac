@epic:payments @severity:critical @requires:host,cards,qr_screen,camera @certification
Feature: Sales end to end with the card or code the rig presents
  The rig chooses how the customer pays: a chip card it inserts, a card it taps, a
  wallet payment code it shows on the QR screen. The terminal prompts, takes the
  instrument and goes to the host. The host's own record of the 0200 is checked against
  what the rig presented (entry mode, amount, the card's BIN and last four digits, the
  chip data; or the wallet code), and the result screen against the documentation. A
  host decline is shown with its code; a disabled interface or a withdrawn permission
  refuses the sale before anything reaches the host.

  Background:
    Given the terminal is idle

  @req:SC-PAY-05
  Scenario Outline: A <mode> sale with the card the rig presents is approved as the host saw it
    When the terminal makes a <mode> sale of <amount> with the test card "<card>"
    Then the terminal prompted for that instrument with the amount
    And the sale is approved and the approval screen shows
    And the host received that one sale, with that entry mode, the amount and the instrument presented

    Examples:
      | mode        | amount | card             |
      | chip        | 12.34  | visa-credit      |
      | contactless | 56.78  | mastercard-debit |

  @req:SC-PAY-06
  Scenario: A QR sale with the wallet code the rig shows is approved as the host saw it
    Given the QR screen shows a "wechat" payment code
    When the terminal makes a QR sale of 23.72 with the code shown
    Then the terminal prompted for that instrument with the amount
    And the sale is approved and the approval screen shows
    And the host received that one sale, with that entry mode, the amount and the instrument presented

  @req:SC-PAY-07
  Scenario Outline: A host decline <code> is shown with its response code
    Given the host answers "sale" requests with response code "<code>"
    And the QR screen shows a "<wallet>" payment code
    When the terminal makes a QR sale of <amount> with the code shown
    Then the sale is declined with response code "<code>" and the decline screen shows it
    And the host received that one sale, with that entry mode, the amount and the instrument presented

    Examples:
      | code | wallet | amount |
      | 05   | wechat | 8.00   |
      | 51   | alipay | 99.99  |

  @epic:payment_interfaces @req:SC-IFACE-02 @req:SC-PAY-08
  Scenario Outline: A sale on a disabled <mode> interface is refused and nothing reaches the host
    Given for this scenario the configuration key "<key>" is set to "false"
    Then a <mode> sale is refused with code "E_PAY_INTERFACE_DISABLED" and nothing reaches the host

    Examples:
      | mode        | key            |
      | QR          | interfaces.qr  |
      | contactless | interfaces.nfc |

  @epic:payment_interfaces @req:SC-IFACE-02 @req:SC-PAY-08
  Scenario: Without the sale permission QR and contactless sales are refused and nothing reaches the host
    Given for this scenario the configuration key "permissions.sale" is set to "false"
    Then a QR sale is refused with code "E_PAY_NOT_PERMITTED" and nothing reaches the host
    And a contactless sale is refused with code "E_PAY_NOT_PERMITTED" and nothing reaches the host
