"""Collectors: Discord history and media (or DiscordChatExporter exports) into the lossless raw store."""
