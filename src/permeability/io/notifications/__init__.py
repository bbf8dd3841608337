"""Telling people: events worded by :mod:`permeability.monitoring.messages`, sent by e-mail or
webhook, durably and in the background.

* :mod:`.history` — ``events.jsonl``, every published event and what became of each delivery;
* :mod:`.outbox` — one file per pending delivery per channel, so a crash or an exit loses none;
* :mod:`.sending` — one attempt on one channel (:mod:`.smtp`, :mod:`.webhook`), its links
  (:mod:`.links`);
* :mod:`.dispatcher` — a daemon thread per channel draining its outbox with retries and
  backoff, never raising into the job that published.

What an event is and when one is raised is not decided here (the monitoring core and the
pipelines do that); which channels want it is the channel's configuration
(:mod:`permeability.notifications_config`).
"""
