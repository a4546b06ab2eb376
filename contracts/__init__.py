"""The wire language both services share: event payloads, the CloudEvents envelope, subjects, codecs.

No I/O lives here.
"""
