"""What redaction shows and which Redis commands it looks into: the one definition of the mark
and of the command list, imported by the RESP and HTTP decoders, the decoder chain and the line
views so they cannot drift apart. Pure: imports nothing."""

REDACTED = b"(redacted)"  # what a hidden secret is shown as, in every view
# The commands ``respdecoder.secret_parts`` may find a password in.
SECRET_COMMANDS = frozenset({b"AUTH", b"HELLO", b"MIGRATE", b"CONFIG", b"ACL", b"SENTINEL"})
