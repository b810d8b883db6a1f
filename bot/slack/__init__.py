"""The Slack side: the Bolt app, HTTP and Socket Mode servers, App Home, the scheduler."""
