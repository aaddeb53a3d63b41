#!/usr/bin/env Rscript
# Reference values from R mclust for gmmflow's tests (tests/test_mclust_reference.py).
#
# Usage, from the repository root (needs R with mclust and MASS, e.g. Debian's
# `apt-get install r-cran-mclust r-cran-mass`):
#
#     Rscript bench/mclust_reference.R [tests/reference/mclust_reference.json]
#
# It reads the CSV files bundled in data/ (so R and Python see the same numbers;
# faithful, iris and geyser are checked against R's own copies first) and writes
# one JSON file with, per dataset:
#   * the hc() merge partitions (hclass) for K = 2..9 with mclust's defaults
#     (hcModelName "VVV", hcUse "SVD"), exactly what Mclust() starts EM from;
#   * for K in 2, 3 (and 4 on faithful) x models VVV, EEE, VVI, VII x
#     {no prior, priorControl()}:
#       - "mclust":      me() from the hc partition with tol = c(1e-13, 1e-13)
#                        (what Mclust(..., control = emControl(tol = 1e-13)) does;
#                        checked equal to the Mclust() call);
#       - "fixed_point": me() from the same partition with tol = c(0, 0) and
#                        itmax = 1e5: EM run until the log-likelihood stops changing
#                        in floating point. Its parameters are the reference
#                        optimum (at tol 1e-13 mclust's parameters are still ~1e-4
#                        away from the fixed point on faithful, MLE).
#     each with pro, mean, sigma, loglik, bic, n.par, iterations, the final
#     relative change, mclust's returnCode and WARNING;
#   * hc(X, "EII", use = "SVD") partitions (mclust's choice when n <= d) for iris
#     and wine's first 10 rows;
#   * mclust's qclass() partitions of the 1-D galaxies data (what Mclust starts
#     from when d = 1), K = 2..6;
#   * defaultPrior's hyper-parameters (shrinkage, mean, dof, scale) per model and K;
#   * MclustBootstrap standard errors on faithful (VVV K = 2 and EEE K = 3, no prior;
#     types "bs", "pb", "wlbs", nboot = 999, set.seed(1)): summary(boot, what = "se");
#   * timings of whole Mclust() calls (hc + EM), median of repeated runs.
# Numbers are written with 17 significant digits (round-trip exact).

suppressPackageStartupMessages({
  library(mclust)
  library(MASS)
})

args <- commandArgs(trailingOnly = TRUE)
out_path <- if (length(args)) args[1] else "tests/reference/mclust_reference.json"

TOL_MCLUST <- c(1e-13, 1e-13)
TOL_FIXED <- c(0, 0)
ITMAX_FIXED <- c(100000L, 100000L)
MODELS <- c("VVV", "EEE", "VVI", "VII")
HC_KS <- 2:9
N_TIMING <- 7L

# ---------------------------------------------------------------------------
# a minimal JSON writer with 17 significant digits
# ---------------------------------------------------------------------------
jarray <- function(x) structure(x, class = c("jarray", class(x)))

num <- function(x) {
  ifelse(is.na(x), "null",
         ifelse(is.infinite(x), ifelse(x > 0, "1e999", "-1e999"),
                sprintf("%.17g", x)))
}

to_json <- function(x) {
  if (is.null(x)) return("null")
  if (is.list(x)) {
    if (!is.null(names(x))) {
      keys <- vapply(names(x), function(k) sprintf('"%s"', k), "")
      vals <- vapply(x, to_json, "")
      return(paste0("{", paste(keys, vals, sep = ": ", collapse = ", "), "}"))
    }
    return(paste0("[", paste(vapply(x, to_json, ""), collapse = ", "), "]"))
  }
  if (is.matrix(x)) {
    rows <- vapply(seq_len(nrow(x)), function(i) to_json(jarray(unname(x[i, ]))), "")
    return(paste0("[", paste(rows, collapse = ", "), "]"))
  }
  as_array <- inherits(x, "jarray") || length(x) != 1
  x <- unclass(x)
  vals <- if (is.character(x)) sprintf('"%s"', x)
          else if (is.logical(x)) ifelse(is.na(x), "null", ifelse(x, "true", "false"))
          else num(as.double(x))
  if (as_array) paste0("[", paste(vals, collapse = ", "), "]") else vals
}

# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------
read_features <- function(name, cols) {
  df <- read.csv(file.path("data", paste0(name, ".csv")))
  as.matrix(df[, cols])
}

check_same <- function(a, b, what) {
  d <- max(abs(as.matrix(a) - as.matrix(b)))
  if (d > 1e-12) stop(sprintf("data/%s.csv differs from R's copy by %g", what, d))
}

datasets <- list()
datasets$faithful <- read_features("faithful", c("eruptions", "waiting"))
check_same(datasets$faithful, faithful, "faithful")
datasets$iris <- read_features("iris", c("sepal_length", "sepal_width", "petal_length", "petal_width"))
check_same(datasets$iris, iris[, 1:4], "iris")
datasets$wine <- read_features("wine", c("alcohol", "malic_acid", "ash", "alcalinity",
                                         "magnesium", "phenols", "flavanoids", "nonflavanoid",
                                         "proanthocyanins", "intensity", "hue", "od280", "proline"))
if (requireNamespace("gclus", quietly = TRUE)) {
  data(wine, package = "gclus", envir = environment())
  check_same(datasets$wine, wine[, 2:14], "wine")
}
datasets$geyser <- read_features("geyser", c("waiting", "duration"))
check_same(datasets$geyser, MASS::geyser, "geyser")

KS <- list(faithful = 2:4, iris = 2:3, wine = 2:3, geyser = 2:3)

# ---------------------------------------------------------------------------
# one fit
# ---------------------------------------------------------------------------
fit_summary <- function(fit, X, model, K) {
  n <- nrow(X); d <- ncol(X)
  info <- attr(fit, "info")
  rc <- attr(fit, "returnCode")
  w <- attr(fit, "WARNING")
  par <- fit$parameters
  sigma <- par$variance$sigma
  npar <- nMclustParams(model, d, K)
  ok <- !is.null(fit$loglik) && is.finite(fit$loglik) && !any(is.na(par$pro))
  list(
    returnCode = rc,
    warning = if (is.null(w)) NULL else as.character(w),
    iterations = as.integer(abs(info[1])),
    final_relative_change = unname(info[2]),
    loglik = if (ok) fit$loglik else NA,
    bic = if (ok) bic(model, fit$loglik, n, d, K) else NA,
    n_par = npar,
    pro = if (ok) jarray(unname(par$pro)) else NULL,
    mean = if (ok) t(unname(par$mean)) else NULL,                    # (K, d)
    sigma = if (ok) lapply(seq_len(K), function(k) unname(sigma[, , k])) else NULL  # K x (d, d)
  )
}

prior_summary <- function(X, K, model) {
  pp <- defaultPrior(X, G = K, modelName = model)
  scale <- pp$scale
  list(shrinkage = pp$shrinkage, mean = jarray(unname(pp$mean)), dof = pp$dof,
       scale = if (is.matrix(scale)) unname(scale) else unname(scale))
}

# ---------------------------------------------------------------------------
# run
# ---------------------------------------------------------------------------
out <- list(
  meta = list(
    generated_by = "bench/mclust_reference.R",
    command = "Rscript bench/mclust_reference.R",
    r_version = R.version.string,
    mclust_version = as.character(packageVersion("mclust")),
    mass_version = as.character(packageVersion("MASS")),
    hc_model_name = mclust.options("hcModelName"),
    hc_use = mclust.options("hcUse"),
    mclust_subset = mclust.options("subset"),
    tol_mclust = jarray(TOL_MCLUST),
    tol_fixed_point = jarray(TOL_FIXED),
    itmax_fixed_point = jarray(ITMAX_FIXED),
    note = paste("hc partitions: hclass(hc(X), K), labels 1..K in order of first appearance.",
                 "mean is (K, d), sigma a list of K (d, d) matrices (row-major).",
                 "bic is mclust's (2 loglik - n_par log n); gmmflow's is its negative.")
  ),
  datasets = list()
)

for (name in names(datasets)) {
  X <- datasets[[name]]
  n <- nrow(X); d <- ncol(X)
  cat(sprintf("%s: %d x %d\n", name, n, d))
  hcp <- hc(X, modelName = mclust.options("hcModelName"), use = mclust.options("hcUse"))
  cls <- hclass(hcp, HC_KS)
  hc_part <- list()
  for (K in HC_KS) hc_part[[as.character(K)]] <- jarray(as.integer(cls[, as.character(K)]))
  entry <- list(n = n, d = d, hc_partitions = hc_part,
                hc_merges = lapply(seq_len(ncol(hcp)), function(i) jarray(as.integer(hcp[, i]))),
                fits = list(), default_prior = list())
  for (K in KS[[name]]) {
    z <- unmap(hclass(hcp, K))
    for (model in MODELS) {
      entry$default_prior[[paste0(model, "_K", K)]] <- prior_summary(X, K, model)
      for (use_prior in c(FALSE, TRUE)) {
        prior <- if (use_prior) priorControl() else NULL
        key <- sprintf("%s_K%d_%s", model, K, if (use_prior) "prior" else "mle")
        f13 <- me(X, model, z, prior = prior, control = emControl(tol = TOL_MCLUST))
        ffx <- me(X, model, z, prior = prior,
                  control = emControl(tol = TOL_FIXED, itmax = ITMAX_FIXED))
        # the same fit through the public entry point
        M <- Mclust(X, G = K, modelNames = model, prior = prior,
                    control = emControl(tol = TOL_MCLUST), verbose = FALSE)
        if (!is.null(M) && is.finite(f13$loglik) &&
            abs(M$loglik - f13$loglik) > 1e-9 * abs(f13$loglik))
          stop(sprintf("%s %s: Mclust loglik %.17g != me() %.17g", name, key, M$loglik, f13$loglik))
        entry$fits[[key]] <- list(
          model = model, K = K, prior = use_prior,
          mclust = fit_summary(f13, X, model, K),
          fixed_point = fit_summary(ffx, X, model, K),
          Mclust_bic = if (is.null(M)) NA else M$bic
        )
        cat(sprintf("  %-16s tol13: it=%5d ll=%.10f | fixed: it=%6d rc=%d ll=%.10f\n", key,
                    abs(attr(f13, "info")[1]), f13$loglik, abs(attr(ffx, "info")[1]),
                    attr(ffx, "returnCode"), ffx$loglik))
      }
    }
  }
  out$datasets[[name]] <- entry
}

# hc with modelName "EII" (what mclustBIC uses when n <= d): iris, and wine's first 10 rows
out$hc_eii <- list()
for (case in list(list("iris", NULL), list("wine", 1:10))) {
  X <- datasets[[case[[1]]]]
  if (!is.null(case[[2]])) X <- X[case[[2]], , drop = FALSE]
  h <- hc(X, modelName = "EII", use = mclust.options("hcUse"))
  ks <- 2:min(5, nrow(X) - 1)
  cls <- hclass(h, ks)
  parts <- list()
  for (K in ks) parts[[as.character(K)]] <- jarray(as.integer(cls[, as.character(K)]))
  out$hc_eii[[length(out$hc_eii) + 1]] <- list(dataset = case[[1]], n_rows = nrow(X),
                                               partitions = parts)
}

# one-dimensional data: Mclust() does not call hc() but cuts at quantiles (qclass)
galaxies <- read.csv(file.path("data", "galaxies.csv"))$velocity
check_same(galaxies, MASS::galaxies, "galaxies")
out$qclass <- list(dataset = "galaxies", partitions = list())
for (K in 2:6)
  out$qclass$partitions[[as.character(K)]] <- jarray(as.integer(mclust:::qclass(galaxies, K)))

# ---------------------------------------------------------------------------
# MclustBootstrap standard errors (faithful, no prior)
# ---------------------------------------------------------------------------
N_BOOT <- 999L
out$bootstrap <- list(nboot = N_BOOT, seed = 1L, dataset = "faithful",
                      note = paste("summary(MclustBootstrap(Mclust(X, G, model), nboot, type), what = 'se');",
                                   "pro (G), mean (G, d), variance (G, d, d)"),
                      fits = list())
for (case in list(list("VVV", 2L), list("EEE", 3L))) {
  X <- datasets$faithful
  M <- Mclust(X, G = case[[2]], modelNames = case[[1]], verbose = FALSE)
  entry <- list(model = case[[1]], K = case[[2]], loglik = M$loglik,
                pro = jarray(unname(M$parameters$pro)), mean = t(unname(M$parameters$mean)),
                types = list())
  for (type in c("bs", "pb", "wlbs")) {
    set.seed(1)
    boot <- MclustBootstrap(M, nboot = N_BOOT, type = type, verbose = FALSE)
    se <- summary(boot, what = "se")
    entry$types[[type]] <- list(
      nonfit = boot$nonfit,
      pro = jarray(unname(se$pro)),
      mean = t(unname(se$mean)),
      variance = lapply(seq_len(case[[2]]), function(k) unname(se$variance[, , k])))
    cat(sprintf("bootstrap %s K=%d %s: se(pro) = %s\n", case[[1]], case[[2]], type,
                paste(sprintf("%.4f", se$pro), collapse = " ")))
  }
  out$bootstrap$fits[[paste0(case[[1]], "_K", case[[2]])]] <- entry
}

# ---------------------------------------------------------------------------
# timings of whole Mclust() calls (hc + EM), tol 1e-13
# ---------------------------------------------------------------------------
time_call <- function(X, K, model, prior) {
  Mclust(X, G = K, modelNames = model, prior = prior,
         control = emControl(tol = TOL_MCLUST), verbose = FALSE)  # warm-up
  t <- replicate(N_TIMING, system.time(
    Mclust(X, G = K, modelNames = model, prior = prior,
           control = emControl(tol = TOL_MCLUST), verbose = FALSE))[["elapsed"]])
  median(t)
}
timing_cases <- list(
  list("faithful", 3, "VVV", TRUE), list("faithful", 3, "VVV", FALSE),
  list("faithful", 2, "VVV", TRUE), list("faithful", 4, "VVV", TRUE),
  list("faithful", 3, "EEE", TRUE), list("faithful", 3, "VVI", TRUE),
  list("faithful", 3, "VII", TRUE), list("iris", 3, "VVV", TRUE),
  list("wine", 3, "VVV", TRUE), list("wine", 3, "EEE", TRUE),
  list("geyser", 3, "VVV", TRUE)
)
timings <- list()
for (tc in timing_cases) {
  X <- datasets[[tc[[1]]]]
  prior <- if (tc[[4]]) priorControl() else NULL
  s <- time_call(X, tc[[2]], tc[[3]], prior)
  hc_s <- median(replicate(N_TIMING, system.time(hc(X, modelName = "VVV", use = "SVD"))[["elapsed"]]))
  timings[[length(timings) + 1]] <- list(dataset = tc[[1]], K = tc[[2]], model = tc[[3]],
                                         prior = tc[[4]], mclust_seconds = s,
                                         hc_only_seconds = hc_s, repeats = N_TIMING)
  cat(sprintf("time %s K=%d %s prior=%s: %.4f s (hc %.4f s)\n", tc[[1]], tc[[2]], tc[[3]],
              tc[[4]], s, hc_s))
}
out$timings <- list(
  what = paste("median wall seconds of Mclust(X, G = K, modelNames = model, prior = ...,",
               "control = emControl(tol = 1e-13)) over", N_TIMING, "runs after one warm-up;",
               "hc_only_seconds: hc(X, 'VVV', use = 'SVD') alone"),
  machine = paste(Sys.info()[["sysname"]], Sys.info()[["machine"]],
                  "cores:", parallel::detectCores()),
  cases = timings
)

dir.create(dirname(out_path), showWarnings = FALSE, recursive = TRUE)
writeLines(to_json(out), out_path)
cat("wrote", out_path, "\n")
