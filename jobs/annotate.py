"""Ray job entrypoint: the annotate stage alone (`raysynth annotate`).

    ray job submit --working-dir . --runtime-env jobs/runtime_env.yaml -- \
        python jobs/annotate.py --config jobs/configs/local.yaml
"""

import sys

from _entry import main

if __name__ == "__main__":
    sys.exit(main("annotate"))
