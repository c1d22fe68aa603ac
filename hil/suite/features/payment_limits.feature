@epic:payments @severity:critical @requires:host @certification
Feature: Sale amounts at both edges of the documented range
  payment.sale takes 1 to 999999999999 minor units (12 digits, ISO 8583 field 4). The
  smallest and the largest amount must reach the host exactly; the amount just below
  and just above must be refused before anything is sent.

  @req:SC-PAY-04
  Scenario Outline: A sale at an edge of the range reaches the host with exactly its amount
    Given the terminal is idle
    When the terminal makes a sale of <amount> over the host
    Then the sale is approved and the host's journal holds exactly <amount>

    Examples:
      | amount        |
      | 0.01          |
      | 9999999999.99 |

  @req:SC-PAY-04
  Scenario Outline: A sale just outside the range is refused and nothing reaches the host
    Given the terminal is idle
    Then a sale of <amount> is refused with code "E_BAD_ARGS" and nothing reaches the host

    Examples:
      | amount         |
      | 0.00           |
      | 10000000000.00 |
