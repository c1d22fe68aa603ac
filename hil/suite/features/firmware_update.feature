@epic:firmware @severity:critical @certification @requires:updates
Feature: Firmware update, provoked both ways
  The terminal installs a signed, newer image for its model from the rig's update
  medium into its inactive slot and reboots into it; it refuses every other image
  with its documented code and keeps running the image it had. A power cut at any
  phase of an update never leaves it unbootable: it boots the old image before the
  switch and the new one after. The rig delivers the images, hashes them itself and
  cuts the power with its own power instrument, at a point the terminal reports.

  @req:SC-FW-02 @slow
  Scenario: A signed newer image installs and then runs as the new version
    Given the terminal is idle
    And the rig delivers firmware image "pos-sim-healthy-1.5.0.fw.json"
    When the terminal is told to install it
    Then the terminal reboots into version "1.5.0" of that image

  @req:SC-FW-03 @req:SC-FW-05
  Scenario Outline: An image that is <what> is refused and the old version runs on
    Given the terminal is idle
    And the rig delivers firmware image "<image>"
    When the terminal is told to install it
    Then the update is refused with code "<code>" and nothing is installed
    And the terminal still runs the rig's firmware image

    Examples:
      | what                    | image                             | code           |
      | unsigned                | unsigned-1.5.0.fw.json            | E_FW_UNSIGNED  |
      | tampered after signing  | tampered-1.5.0.fw.json            | E_FW_SIGNATURE |
      | for another model       | pos-sim-other-model-1.5.0.fw.json | E_FW_MODEL     |
      | older than the running  | pos-sim-healthy-1.3.0.fw.json     | E_FW_DOWNGRADE |

  @req:SC-FW-04 @slow
  Scenario Outline: A power cut while the update is <phase> leaves a bootable terminal
    Given the terminal is idle
    And the rig delivers firmware image "pos-sim-healthy-1.5.0.fw.json"
    When the power is cut while the update is held at "<phase>"
    Then after power returns the terminal runs the image that phase allows

    Examples:
      | phase       |
      | downloading |
      | verifying   |
      | writing     |
      | switching   |
