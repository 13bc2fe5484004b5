"""Tables and figures rendered from the results store; never imports torch."""
