"""The OpenID Connect provider's protocol logic, one module per specification section.

Nothing here knows the web framework: ``onecard.api`` parses requests into the frozen
dataclasses these modules take and turns their results (and :mod:`.errors`) into responses.
"""
