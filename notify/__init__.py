"""Alerts on the phone: reads the events the supervisors append and delivers them through Apprise.

Kept outside core/ on purpose: the management plane (list, status, the supervisor) never imports
a notification library. settings.py says where URLs come from, messages.py what a message says,
state.py what survives a crash or reboot, deliver.py how one URL is sent to, notifier.py the loop.
"""
