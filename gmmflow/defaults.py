"""One default per concept, shared by the Python API, the CLI and the report."""

N_INIT = 10  # EM restarts
INIT = "hc+kmeans++"  # EM starts: restart 0 from mclust's hierarchical clustering, the others k-means++
MAX_ITER = 1000  # EM iterations per restart
TOL = 1e-8  # relative change of the EM objective at convergence
REG_COVAR = 1e-6  # MLE only: added to the covariance diagonal, as sklearn
INTERVAL_PROB = 0.94  # probability mass of posterior intervals (ArviZ's HDI default)
DRAWS = 1000  # posterior draws per chain
TUNE = 1000  # tuning (warm-up) steps per chain
CHAINS = 4
N_BOOT = 999  # bootstrap replicates (mclust's MclustBootstrap default)
EM_LOO_MAX_OBS = 2000  # largest data set on which EM's exact leave-one-out is run
MISSING = "error"  # NaN in the data: refused ("marginalize": fit on each row's observed values)
