"""The pages of browser mode: login, register, dashboard."""
