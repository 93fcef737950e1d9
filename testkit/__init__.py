"""What the tests and the benchmarks share, and nothing the product needs: simulated
histories with known verdicts (a linearizable register, transactional stores of known
isolation levels) and an sshd lab in network namespaces.

It sits beside tests/ and bench/ so that both may import it while bench/ never imports
tests/; the checkers never import it (they must work on a history file alone)."""
