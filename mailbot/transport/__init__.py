"""The servers mailbot talks to: the `Mailbox` and `Sender` interfaces and their IMAP, SMTP
and Microsoft Graph implementations, logins and OAuth2, and what wakes a pass."""
