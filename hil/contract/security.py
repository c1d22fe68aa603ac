"""What the documentation promises about admin login, biometrics and the log store
(docs/test-port-protocol.md, "Security", "Biometric sensors", "Log store"), restated
for the rig. The rig judges the terminal against these figures, never against the
sim's own constants.
"""

from __future__ import annotations

#: The admin password every terminal leaves the factory with.
FACTORY_DEFAULT_ADMIN_PASSWORD = "00000000"

# --- password policy -------------------------------------------------------------------
PASSWORD_MIN_LENGTH = 10
PASSWORD_MAX_LENGTH = 64
#: A new password may equal none of the last this many (the current one included).
PASSWORD_HISTORY = 3

#: Each rule and the code a password that breaks only it is refused with.
POLICY_CODES = {
    "factory default": "E_SEC_PW_DEFAULT",
    "too short": "E_SEC_PW_LENGTH",
    "too long": "E_SEC_PW_LENGTH",
    "without a lower-case letter": "E_SEC_PW_CLASSES",
    "without an upper-case letter": "E_SEC_PW_CLASSES",
    "without a digit": "E_SEC_PW_CLASSES",
    "without a symbol": "E_SEC_PW_CLASSES",
    "a recent one": "E_SEC_PW_REUSED",
}

# --- login lockout ---------------------------------------------------------------------
#: The Nth consecutive wrong password is answered E_SEC_LOCKED and locks the login.
MAX_FAILED_LOGINS = 5
#: Nominal lockout period, multiplied by the terminal's time scale.
LOCKOUT_S = 10.0
WRONG_PASSWORD = "E_SEC_BAD_PASSWORD"
LOCKED = "E_SEC_LOCKED"

# --- biometrics ------------------------------------------------------------------------
BIOMETRIC_MODALITIES = ("fingerprint", "face")
BIOMETRIC_CODES = {
    "match": "OK",
    "no match": "E_BIO_NO_MATCH",
    "spoof": "E_BIO_SPOOF",
    "not enrolled": "E_BIO_NOT_ENROLLED",
    "nothing": "E_BIO_NO_SAMPLE",
}
TEMPLATE_BITS = 256
#: Two samples of one subject differ in at most this many bits to match.
MATCH_MAX_BITS = 64
#: The liveness a presentation must reach not to be taken for a spoof.
LIVENESS_MIN = 0.5

# --- log store -------------------------------------------------------------------------
LOG_SEGMENT_ENTRIES = 256
LOG_SEGMENTS = 8
LOG_CAPACITY = LOG_SEGMENT_ENTRIES * LOG_SEGMENTS
#: After a rotation the store keeps the newest whole segments: at least this many.
LOG_KEPT_AFTER_ROTATION = LOG_CAPACITY - LOG_SEGMENT_ENTRIES + 1
LOG_RETENTION_KEY = "log.retention_s"
LOG_RETENTION_DEFAULT_S = 90 * 24 * 3600
LOG_RETENTION_MIN_S = 10
MAX_MARKS_PER_COMMAND = 1000
