"""The Customer Studio (`dbt-studio studio`): a local web app to build, size and sync audiences."""
