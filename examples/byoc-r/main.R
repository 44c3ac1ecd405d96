# A SageMaker bring-your-own-container entry point in R: `train` or `serve`.
#
#   train  reads every CSV file of /opt/ml/input/data/training/ (SageMaker's training channel;
#          no header, the target in the first column, numeric features after it), fits a linear
#          regression with lm(), and writes /opt/ml/model/model.rds. Hyperparameters come from
#          /opt/ml/input/config/hyperparameters.json when it exists (`intercept`: "true" or
#          "false"). A failure is written to /opt/ml/output/failure, as SageMaker expects, and
#          the process exits 1.
#   serve  loads /opt/ml/model/model.rds, then serves plumber.R on
#          0.0.0.0:${SAGEMAKER_BIND_TO_PORT:-8080}: GET /ping and POST /invocations (text/csv).
#
# The paths can be moved with SM_ML_ROOT (default /opt/ml), for running outside a container.

ml_root <- Sys.getenv("SM_ML_ROOT", "/opt/ml")
ml_path <- function(...) file.path(ml_root, ...)

fail <- function(message) {
  dir.create(ml_path("output"), showWarnings = FALSE, recursive = TRUE)
  try(writeLines(message, ml_path("output", "failure")), silent = TRUE)
  message("error: ", message)
  quit(save = "no", status = 1)
}

read_hyperparameters <- function() {
  path <- ml_path("input", "config", "hyperparameters.json")
  if (!file.exists(path)) return(list())
  # SageMaker writes every hyperparameter as a string.
  jsonlite::fromJSON(path)
}

read_training_data <- function() {
  channel <- ml_path("input", "data", "training")
  files <- list.files(channel, pattern = "\\.csv$", full.names = TRUE)
  if (length(files) == 0) {
    fail(sprintf("no CSV file in %s: put the training data (target first, no header) there", channel))
  }
  frames <- lapply(files, function(f) utils::read.csv(f, header = FALSE))
  widths <- vapply(frames, ncol, integer(1))
  if (length(unique(widths)) != 1) {
    fail(sprintf("the training files have different numbers of columns: %s",
                 paste(basename(files), widths, sep = "=", collapse = ", ")))
  }
  data <- do.call(rbind, frames)
  if (ncol(data) < 2) fail("the training data needs a target column and one feature at least")
  numeric <- vapply(data, is.numeric, logical(1))
  if (!all(numeric)) {
    fail(sprintf("the training data has non-numeric columns: %s",
                 paste(which(!numeric), collapse = ", ")))
  }
  names(data) <- c("target", sprintf("x%d", seq_len(ncol(data) - 1)))
  data
}

train <- function() {
  params <- read_hyperparameters()
  data <- read_training_data()
  intercept <- tolower(as.character(params$intercept %||% "true")) != "false"
  formula <- if (intercept) target ~ . else target ~ . - 1
  fit <- stats::lm(formula, data = data)
  model <- list(
    coefficients = stats::coef(fit),
    features = setdiff(names(data), "target"),
    intercept = intercept
  )
  dir.create(ml_path("model"), showWarnings = FALSE, recursive = TRUE)
  saveRDS(model, ml_path("model", "model.rds"))
  message(sprintf("trained lm on %d rows, %d features; wrote %s",
                  nrow(data), length(model$features), ml_path("model", "model.rds")))
}

serve <- function() {
  path <- ml_path("model", "model.rds")
  if (!file.exists(path)) fail(sprintf("no model at %s: run `train`, or mount the model there", path))
  model <- readRDS(path)
  port <- as.integer(Sys.getenv("SAGEMAKER_BIND_TO_PORT", "8080"))
  api <- plumber::pr(file.path(Sys.getenv("PROGRAM_DIR", "/opt/program"), "plumber.R"),
                     envir = list2env(list(model = model), parent = globalenv()))
  message(sprintf("serving %s on 0.0.0.0:%d", path, port))
  plumber::pr_run(api, host = "0.0.0.0", port = port, docs = FALSE, quiet = TRUE)
}

`%||%` <- function(a, b) if (is.null(a)) b else a

args <- commandArgs(trailingOnly = TRUE)
command <- if (length(args)) args[[1]] else ""
switch(command,
  train = tryCatch(train(), error = function(e) fail(conditionMessage(e))),
  serve = serve(),
  fail(sprintf("unknown command '%s': use `train` or `serve`", command))
)
