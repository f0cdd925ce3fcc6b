"""The servers mailbot talks to: the `Mailbox` and `Sender` interfaces (`base.py`) and their
IMAP, SMTP and Microsoft Graph implementations, logins and OAuth2, and the parsing worker."""
