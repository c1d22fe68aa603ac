@epic:qr_scanner @severity:critical @requires:qr_screen,camera @certification
Feature: QR scanner
  The rig shows the terminal a known QR code on its screen, under calibrated,
  repeatable conditions (docs/qr.md), and checks what the terminal decodes, how fast,
  and where it stops decoding. The payload read must equal the payload shown, or the
  terminal must say cleanly that it read nothing: never another payload.
  The image shown and the terminal's answer are attached to every scenario.

  Background:
    Given the terminal is idle

  @smoke @req:SC-QR-01
  Scenario: A merchant QR code decodes to exactly the payload shown, in time
    Given the QR screen shows the merchant QR code "dynamic_cny"
    When the terminal scans a QR code
    Then the terminal reports exactly the payload shown
    And the decode time is within 300 ms

  @req:SC-QR-01
  Scenario: The EMVCo specification's own sample decodes, Chinese text included
    Given the QR screen shows the merchant QR code "emvco_annex_sample"
    When the terminal scans a QR code
    Then the terminal reports exactly the payload shown
    And the decode time is within 300 ms

  @req:SC-QR-02
  Scenario Outline: A code degraded within the scanner spec still decodes
    Given the QR screen shows the merchant QR code "dynamic_cny" degraded by "<degradation>"
    When the terminal scans a QR code
    Then the terminal reports exactly the payload shown
    And the decode time is within 300 ms

    Examples:
      | degradation                                                |
      | blur_sigma=1.5                                             |
      | contrast=0.2                                               |
      | luminance=0.2                                              |
      | tilt_deg=40                                                |
      | rotation_deg=135                                           |
      | glare=0.5                                                  |
      | occlusion_pct=5                                            |
      | noise_sigma=20                                             |
      | blur_sigma=1, contrast=0.4, rotation_deg=20, noise_sigma=8 |

  @req:SC-QR-03
  Scenario Outline: A code degraded beyond the spec fails cleanly, never as another payload
    Given the QR screen shows the merchant QR code "dynamic_cny" degraded by "<degradation>"
    When the terminal scans a QR code for at most 300 ms
    Then the terminal reports no code read with "E_QR_NO_CODE" and never another payload

    Examples:
      | degradation                    |
      | blur_sigma=5                   |
      | tilt_deg=80                    |
      | occlusion_pct=40               |
      | luminance=0.03, noise_sigma=8  |
      | contrast=0.05, noise_sigma=25  |

  @req:SC-QR-04
  Scenario: A merchant QR code with a wrong CRC is rejected
    Given the QR screen shows the merchant QR code "static_shop" with a wrong CRC
    When the terminal scans a QR code
    Then the terminal rejects the code with "E_QR_CRC"

  @req:SC-QR-05
  Scenario Outline: A consumer-presented wallet code is accepted
    Given the QR screen shows a "<wallet>" payment code
    When the terminal scans a QR code
    Then the terminal reports exactly the payload shown
    And it identifies the code as a "<wallet>" wallet code

    Examples:
      | wallet   |
      | wechat   |
      | alipay   |
      | unionpay |

  @req:SC-QR-06
  Scenario: A dirty scan window makes the scanner self-check warn
    Given the scan window is degraded: the calibration target shows with "occlusion_pct=30"
    When the terminal runs its "qr_scanner" self-check
    Then the "qr_scanner" self-check warns with code "E_CAMERA_WINDOW_DIRTY"
    And the idle screen shows the warning "E_CAMERA_WINDOW_DIRTY" with its documented text

  @req:SC-QR-07
  Scenario: Low light makes the scanner self-check warn
    Given the scan window is degraded: the calibration target shows with "luminance=0.04, noise_sigma=8"
    When the terminal runs its "qr_scanner" self-check
    Then the "qr_scanner" self-check warns with code "E_CAMERA_LOW_LIGHT"
    And the idle screen shows the warning "E_CAMERA_LOW_LIGHT" with its documented text

  @slow @nightly @req:SC-QR-02 @req:SC-QR-03
  Scenario: Decode rate against blur shows where the scanner stops reading
    When the rig sweeps "blur_sigma" over "0, 1, 1.5, 2.5, 4" with 2 frames a level showing the merchant QR code "dynamic_cny"
    Then every level within the spec decodes every frame
    And no frame of the sweep was read as a wrong payload
