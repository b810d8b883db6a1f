"""``/hokusai watch``: re-run the failing checks every tick and say when they recover.

``model`` holds the tracks and the headline (failing, intermittent, recovered, regressed),
``engine`` runs one tick, ``render`` draws the message, ``supervisor`` runs the watches of a
process under leases, ``tickets`` keeps the linked tickets honest, ``limits`` the bounds.
"""
