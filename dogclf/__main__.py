"`python -m dogclf run ...` is the same as the `dogclf` console script."
from dogclf.run import main

if __name__ == "__main__":
    main()
