"""
The errors of the mail lab's store: the requests it refuses.

Each is a L{ServerRefused}, with a one-line C{str()} that the protocol
servers and the HTTP API hand to the client as they are.
"""

from __future__ import annotations

from twisted_netlab.errors import ServerRefused


class MailStoreError(ServerRefused):
    """
    A request the mail store refuses: a bad or unknown mailbox, a bad address.
    """


class InvalidName(MailStoreError):
    """
    A mailbox name or address that could leave the user's Maildir or that
    the store cannot hold.
    """


class NoSuchMailbox(MailStoreError):
    """
    The mailbox does not exist.
    """


class MailboxExists(MailStoreError):
    """
    A mailbox of that name already exists.
    """


class MailboxHasChildren(MailStoreError):
    """
    The mailbox has inferior mailboxes; delete them first.
    """


class MessageGone(MailStoreError):
    """
    The message was expunged (or removed by another program).
    """


class KeywordLimit(MailStoreError):
    """
    A folder already has 26 keywords, as many as Maildir has letters for.
    """


class NoSuchKeyword(MailStoreError):
    """
    No folder of the store has that keyword (no message has that tag).
    """


class KeywordExists(MailStoreError):
    """
    A keyword cannot be renamed to a name another keyword already has.
    """
