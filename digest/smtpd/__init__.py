"""SMTP servers (aiosmtpd): the inbound server that hands mail to its use case, and the sink.

An edge like the web app: it receives, calls one use case, answers. Nothing here speaks SQL.
"""
