#!/usr/bin/env Rscript
# Reference values from R mclust's noise component for tests/test_noise.py.
#
# Usage, from the repository root (needs R with mclust, e.g. Debian's r-cran-mclust):
#
#     Rscript bench/mclust_noise_reference.R [tests/reference/mclust_noise_reference.json]
#
# Data: two Gaussian clusters in 2-D (135 rows each) plus 30 rows uniform on the box
# [-4, 8] x [-4, 7], set.seed(15); and faithful (data/faithful.csv) with the noise
# initialised on the 10% of rows of lowest nearest-neighbour density (mclust's
# recipe). Both data sets are written into the JSON, so the tests need no R.
#
# Per data set:
#   * hypvol: mclust's hypvol(X) (the default volume, V = 1 / Vinv), the volume of
#     the bounding box and of the principal-component box;
#   * for each model VVV, EEE, VVI, VII, without a prior and with priorControl():
#       - "mclust": Mclust(X, G = 2, modelNames = model, initialization =
#         list(noise = noise_init)) with tol = c(1e-13, 1e-13);
#       - "fixed_point": em<model>() from those parameters (Vinv = 1 / hypvol)
#         with tol = c(0, 0), itmax = 1e5: EM until the log-likelihood stops
#         changing in floating point (the reference optimum);
#       - "estep": estep() at the fixed point: the log-likelihood there and the
#         responsibilities z (n, G + 1; the noise column last);
#     each with pro (G + 1, the noise's last), mean (G, d), sigma (G matrices),
#     loglik, bic (mclust's sign: 2 loglik - n_par log n), n_par; {"failed": 1} where
#     Mclust() returned no fit (a mixing proportion fell to zero).
# Numbers are written with 17 significant digits (round-trip exact).

suppressPackageStartupMessages(library(mclust))

args <- commandArgs(trailingOnly = TRUE)
out_path <- if (length(args)) args[1] else "tests/reference/mclust_noise_reference.json"
MODELS <- c("VVV", "EEE", "VVI", "VII")
G <- 2L

# a minimal JSON writer with 17 significant digits
to_json <- function(x) {
  if (is.null(x)) return("null")
  if (is.list(x)) {
    vals <- vapply(x, to_json, "")
    if (!is.null(names(x)))
      return(paste0("{", paste(sprintf('"%s": %s', names(x), vals), collapse = ", "), "}"))
    return(paste0("[", paste(vals, collapse = ", "), "]"))
  }
  if (is.matrix(x))
    return(to_json(lapply(seq_len(nrow(x)), function(i) as.list(unname(x[i, ])))))
  if (is.character(x)) return(if (length(x) == 1) sprintf('"%s"', x) else to_json(as.list(x)))
  if (is.logical(x)) x <- as.double(x)
  vals <- ifelse(is.na(x), "null", sprintf("%.17g", as.double(x)))
  if (length(x) == 1 && is.null(attr(x, "array"))) return(vals)
  paste0("[", paste(vals, collapse = ", "), "]")
}
as_array <- function(x) structure(as.double(x), array = TRUE)

sigmas <- function(p) lapply(seq_len(G), function(k) p$variance$sigma[, , k])

record <- function(fit, X) {
  p <- fit$parameters
  n_par <- nMclustParams(fit$modelName, ncol(X), G, noise = TRUE)
  list(pro = as_array(p$pro), mean = t(p$mean), sigma = sigmas(p), Vinv = p$Vinv,
       loglik = fit$loglik, n_par = n_par,
       bic = bic(fit$modelName, fit$loglik, nrow(X), ncol(X), G, noise = TRUE))
}

log_box <- function(X) sum(log(apply(X, 2, function(col) diff(range(col)))))

reference <- function(X, noise_init) {
  out <- list(X = X, noise_init = as_array(noise_init), hypvol = hypvol(X),
              log_box_volume = log_box(X), log_pc_box_volume = log_box(princomp(X)$scores), fits = list())
  for (model in MODELS) for (use_prior in c(FALSE, TRUE)) {
    prior <- if (use_prior) priorControl() else NULL
    fit <- Mclust(X, G = G, modelNames = model, prior = prior,
                  initialization = list(noise = noise_init),
                  control = emControl(tol = c(1e-13, 1e-13)), verbose = FALSE)
    key <- paste0(model, if (use_prior) "_prior" else "")
    if (is.null(fit) || is.na(fit$loglik)) {  # mclust failed (a mixing proportion fell to zero)
      out$fits[[key]] <- list(failed = TRUE)
      next
    }
    fixed <- em(X, modelName = model, parameters = fit$parameters, prior = prior,
                control = emControl(tol = c(0, 0), itmax = c(100000L, 100000L)))
    fixed$modelName <- model
    e <- estep(X, modelName = model, parameters = fixed$parameters)
    out$fits[[key]] <- list(mclust = record(fit, X), fixed_point = record(fixed, X),
                            estep = list(loglik = e$loglik, z = e$z))
  }
  out
}

# clusters + 10% uniform background
set.seed(15)
clusters <- rbind(cbind(rnorm(135, 0, 0.5), rnorm(135, 0, 0.5)),
                  cbind(rnorm(135, 4, 0.7), rnorm(135, 3, 0.7)))
background <- cbind(runif(30, -4, 8), runif(30, -4, 7))
simulated <- rbind(clusters, background)
simulated_init <- c(rep(FALSE, 270), rep(TRUE, 30))

# faithful, noise initialised on the 10% of rows with the largest distance to their 5th neighbour
faithful_x <- as.matrix(read.csv("data/faithful.csv")[, c("eruptions", "waiting")])
D <- as.matrix(dist(scale(faithful_x)))
kth <- apply(D, 1, function(row) sort(row)[6])
faithful_init <- kth >= quantile(kth, 0.9)

ref <- list(
  R = R.version.string, mclust = as.character(packageVersion("mclust")),
  datasets = list(simulated = reference(simulated, simulated_init),
                  faithful = reference(faithful_x, faithful_init))
)
writeLines(to_json(ref), out_path)
cat("wrote", out_path, "\n")
