"""Long-running services: the dbt Cloud webhook receiver (webhook.py) and the studio web app.

May import anything below it (sync, audiences, project, core); nothing imports serve but the CLI.
"""
