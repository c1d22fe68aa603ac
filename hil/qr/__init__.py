"""QR codes for the rig's display screen: payloads, rendering, calibrated degradations, sweeps.

- ``hil.qr.payloads``: EMVCo merchant-presented QR (TLV, CRC-16/CCITT-FALSE in tag 63)
  and consumer-presented wallet auth codes (WeChat Pay, Alipay, UnionPay).
- ``hil.qr.render``: payload -> QR image (module size, ECC level, quiet zone) -> frame.
- ``hil.qr.degrade``: named, numeric, composable degradations (blur, contrast,
  luminance, tilt, rotation, glare, occlusion, noise) applied with OpenCV.
- ``hil.qr.framelink``: the documented camera channel (pos-hil camera/1 over TCP).
- ``hil.qr.sweep``: decode rate over one degradation axis, as a table and a PNG plot.

See docs/qr.md.
"""
