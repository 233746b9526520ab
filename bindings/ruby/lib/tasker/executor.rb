# frozen_string_literal: true

require 'json'

# executor.rb - runs one step: calls its handler and turns what happened into the step's
# outcome (tk_step_succeed_json / tk_step_fail and friends).
#
#   returned                         outcome
#   success(result:, metadata:)      success; metadata in metadata.custom
#   failure(message:, ...)           failure as given
#   a Hash (or any JSON value)       success with it as the result; nil counts as {}
#   raised Errors::RetryableError    failure, retryable, error_type = class name, retry_after
#   raised Errors::PermanentError    failure, not retryable, error_code in metadata.error_code
#   raised anything else             failure, retryable, error_type = the exception's class
#                                    (e.g. "ZeroDivisionError"), message, backtrace: an
#                                    unexpected error may be transient (a dropped connection),
#                                    and the template's max_attempts bounds the retries
#   result not JSON-serialisable     failure SerializationError, not retryable
#
# Every failure from an exception stores its backtrace (error.backtrace, at most
# BACKTRACE_LINES lines).
module TaskerCore
  class Executor
    BACKTRACE_LINES = 50
    EMPTY_RESULT = {}.freeze

    # handlers: {callable => Registry::ResolvedHandler}; methods: {[namespace, task name,
    # version, step name] => handler.method} for steps whose method is not call.
    def initialize(handlers, methods = {})
      @handlers = handlers
      @methods = methods
    end

    # Run `step` (a TaskerCore::Native::Step, or anything with its methods) to an outcome.
    # Never raises for a handler's error. (Kept short: it runs for every step.)
    def run(step)
      value = call_handler(step)
      if value.is_a?(Types::StepHandlerCallResult)
        value.success? ? apply_success(step, value.result, value.metadata) : apply_failure(step, value)
      else
        apply_success(step, value, nil)
      end
    rescue StandardError, ScriptError => e
      # a failure of this library rather than of the handler: still end the step
      step.fail_step('handler_error', clean("#{e.class}: #{e.message}"), true)
      set_backtrace(step, e)
    end

    private

    # What the handler returned, or a failure result for what it raised.
    def call_handler(step)
      handler = @handlers[step.handler_name]
      return not_found(step) unless handler

      method = @methods.empty? ? nil : @methods[[step.namespace_name, step.task_name, step.task_version, step.name]]
      handler.invoke(StepContext.new(step), method)
    rescue Errors::ProceduralError => e
      from_error(e)
    rescue Exception => e # rubocop:disable Lint/RescueException
      # any exception, not only StandardError: NotImplementedError, SystemStackError and
      # others are failures of this step, not of the worker
      Types::StepHandlerCallResult.error(message: e.message, error_type: e.class.name || 'UnexpectedError',
                                         retryable: true, backtrace: e.backtrace)
    end

    def not_found(step)
      Types::StepHandlerCallResult.error(message: "no Ruby handler resolves \"#{step.handler_name}\"",
                                         error_type: 'HandlerNotFound')
    end

    def from_error(err)
      metadata = {}
      metadata['field'] = err.field if err.respond_to?(:field) && !err.field.nil?
      metadata['error_context'] = err.context if err.context.is_a?(Hash) && !err.context.empty?
      Types::StepHandlerCallResult.error(
        message: err.message, error_type: err.error_type, retryable: err.retryable?,
        error_code: err.respond_to?(:error_code) ? err.error_code : nil,
        retry_after: err.respond_to?(:retry_after) ? err.retry_after : nil,
        metadata: metadata, backtrace: err.backtrace
      )
    end

    # The extension converts the result (and metadata) to JSON itself, strictly (see
    # json_check.rb for the rules); values it can keep exact only as text (integers beyond
    # 64 bits) go through JsonCheck and the JSON text. nil counts as {}.
    def apply_success(step, result, metadata)
      if metadata && !(metadata.respond_to?(:empty?) && metadata.empty?)
        metadata = { 'details' => metadata } unless metadata.is_a?(Hash)
        store(step, :set_metadata, metadata, 'metadata') { |text| step.set_metadata_json(text) }
      end
      result = EMPTY_RESULT if result.nil?
      answer = step.succeed(result)
      store_answer(answer, result, 'result') { |text| step.succeed_json(text) } unless answer.nil?
    rescue Errors::SerializationError => e
      step.fail_step('SerializationError', clean(e.message), false)
    end

    def store(step, method, value, what, &block)
      answer = step.public_send(method, value)
      store_answer(answer, value, what, &block) unless answer.nil?
    end

    def store_answer(answer, value, what)
      raise Errors::SerializationError, "the handler's #{what} is not JSON-serialisable: #{answer}" if answer.is_a?(String)
      raise Errors::SerializationError, "the handler's #{what} was refused" unless answer == :text

      raise Errors::SerializationError, "the handler's #{what} was refused" unless yield(JsonCheck.dump(value, what))
    end

    def apply_failure(step, outcome)
      step.fail_step(clean(outcome.error_type || 'PermanentError'), clean(outcome.message || 'step failed'),
                     outcome.retryable)
      step.set_retry_after(Float(outcome.retry_after)) if outcome.retry_after
      step.set_error_code(clean(outcome.error_code)) unless outcome.error_code.nil?
      metadata = present?(outcome.metadata) ? outcome.metadata.dup : {}
      metadata = { 'details' => metadata } unless metadata.is_a?(Hash)
      unless metadata.empty?
        begin
          store(step, :set_metadata, metadata, 'failure metadata') { |text| step.set_metadata_json(text) }
        rescue Errors::SerializationError => e
          step.log(LOG_LEVELS[:warn], "failure metadata dropped: #{e.message}")
        end
      end
      set_backtrace_lines(step, outcome.backtrace)
    end

    def set_backtrace(step, error)
      set_backtrace_lines(step, error.backtrace)
    end

    def set_backtrace_lines(step, lines)
      return unless lines.is_a?(Array) && !lines.empty?

      step.set_backtrace_json(JSON.generate(lines.first(BACKTRACE_LINES).map { |l| clean(l.to_s) }))
    end

    def present?(value)
      !(value.nil? || (value.respond_to?(:empty?) && value.empty?))
    end

    # Text the C side can store: valid UTF-8 without NUL bytes.
    def clean(text)
      text = text.to_s
      text = text.encode('UTF-8', invalid: :replace, undef: :replace) unless text.encoding == Encoding::UTF_8 && text.valid_encoding?
      text = text.scrub('?') unless text.valid_encoding?
      text.include?("\0") ? text.delete("\0") : text
    end
  end
end
