"""The conversation around a session: chat with moderation (:mod:`chat.messages`,
:mod:`chat.moderation`), direct messages (:mod:`chat.dm`) and Q&A (:mod:`chat.qa`)."""
