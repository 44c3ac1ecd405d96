# The SageMaker container contract in plumber: GET /ping, POST /invocations (text/csv).
# `model` (coefficients, feature names, intercept) is put into this file's environment by
# main.R before the server starts, so /ping answers 200 only once the model is loaded.

csv_error <- function(res, status, message) {
  res$status <- status
  res$setHeader("Content-Type", "text/plain; charset=utf-8")
  res$body <- paste0(message, "\n")
  res
}

#* The model is loaded: answer 200.
#* @get /ping
#* @serializer contentType list(type = "text/plain")
function() {
  "ok\n"
}

#* Rows of features (text/csv, no header) in, one prediction a line out (text/csv).
#* @post /invocations
#* @parser text
function(req, res) {
  type <- tolower(trimws(strsplit(req$HTTP_CONTENT_TYPE %||% "", ";")[[1]][1] %||% ""))
  if (!identical(type, "text/csv")) {
    return(csv_error(res, 415, sprintf(
      "Content-Type '%s' is not supported: send text/csv rows of %d numeric features, no header.",
      req$HTTP_CONTENT_TYPE %||% "", length(model$features))))
  }
  body <- if (is.raw(req$bodyRaw)) rawToChar(req$bodyRaw) else paste(req$postBody, collapse = "\n")
  if (!nzchar(trimws(body))) {
    return(csv_error(res, 400, "The request body is empty: send text/csv rows of features."))
  }
  rows <- tryCatch(
    utils::read.csv(text = body, header = FALSE, colClasses = "character", strip.white = TRUE),
    error = function(e) e
  )
  if (inherits(rows, "error")) {
    return(csv_error(res, 400, paste("The body is not CSV:", conditionMessage(rows))))
  }
  n <- length(model$features)
  if (ncol(rows) != n) {
    return(csv_error(res, 400, sprintf(
      "Each row needs %d numeric features (no header, no target); got %d columns.", n, ncol(rows))))
  }
  cells <- as.matrix(rows)
  values <- matrix(suppressWarnings(as.numeric(cells)), nrow = nrow(cells))
  bad <- which(is.na(values) | !is.finite(values), arr.ind = TRUE)  # "", "abc", "NA", "Inf"
  if (nrow(bad) > 0) {
    return(csv_error(res, 400, sprintf(
      "Row %d, column %d is not a number: '%s'.", bad[1, 1], bad[1, 2], cells[bad[1, 1], bad[1, 2]])))
  }
  beta <- model$coefficients
  predictions <- as.vector(values %*% beta[model$features])
  if (model$intercept) predictions <- predictions + beta[["(Intercept)"]]
  res$status <- 200
  res$setHeader("Content-Type", "text/csv")
  res$body <- paste0(paste(format(predictions, digits = 17, scientific = FALSE, trim = TRUE),
                           collapse = "\n"), "\n")
  res
}

`%||%` <- function(a, b) if (is.null(a) || length(a) == 0) b else a
