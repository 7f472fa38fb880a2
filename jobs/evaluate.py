"""Ray job entrypoint: the evaluate stage alone (`raysynth evaluate`); --model, --test and
the other options of `raysynth evaluate` pass through.

    ray job submit --working-dir . --runtime-env jobs/runtime_env.yaml -- \
        python jobs/evaluate.py --config jobs/configs/local.yaml
"""

import sys

from _entry import main

if __name__ == "__main__":
    sys.exit(main("evaluate"))
