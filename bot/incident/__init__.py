"""The incident log: the store and its migrations, summaries and the post-incident export."""
