"""The chat front ends: a Slack bot (slack-bolt, Events API over HTTP or Socket Mode) and a generic webhook sender."""
