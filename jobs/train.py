"""Ray job entrypoint: the train stage alone (`raysynth train`).

    ray job submit --working-dir . --runtime-env jobs/runtime_env.yaml -- \
        python jobs/train.py --config jobs/configs/local.yaml
"""

import sys

from _entry import main

if __name__ == "__main__":
    sys.exit(main("train"))
