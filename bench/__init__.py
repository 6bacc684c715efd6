"""pushwire benchmark suite.

Measures pushwire (WebSocket, SSE, long-polling) against two reference push servers (the Node.js
``ws`` broadcast loop and uWebSockets.js ``app.publish``) with one Python load generator, in one
run, so that the figures can be read as ratios on a noisy 2-core machine. Run ``python -m bench
--help`` for the commands; ``docs/performance.md`` explains what each figure means.
"""
