"""Reading a terminal's face through a camera: frames, calibration, OCR, indicator LEDs.

- ``hil.camera.frames``: where frames come from (``cv2.VideoCapture`` on a device index,
  URL or video file; an image file; a folder of images).
- ``hil.camera.calibration``: the screen's four corners in the frame and the LED spots,
  the deskew (perspective warp), and automatic detection of the screen's quadrilateral.
- ``hil.camera.ocr``: offline OCR of the deskewed screen into text lines.
- ``hil.camera.leds``: the colour of an indicator LED at a calibrated spot.
- ``hil.camera.photograph``: make a clean render look photographed (tests, benchmarks).
- ``hil.camera.text``: how read text is compared with documented text.

The instrument built from these is ``hil.instruments.camera``.
"""
