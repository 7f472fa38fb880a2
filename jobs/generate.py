"""Ray job entrypoint: the generate stage alone (`raysynth generate`).

    ray job submit --working-dir . --runtime-env jobs/runtime_env.yaml -- \
        python jobs/generate.py --config jobs/configs/local.yaml
"""

import sys

from _entry import main

if __name__ == "__main__":
    sys.exit(main("generate"))
