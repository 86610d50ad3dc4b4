"""``python -m gru4rec`` is the same as the ``gru4rec`` console command."""

from gru4rec.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
