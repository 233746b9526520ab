# frozen_string_literal: true

require 'yaml'

# templates.rb - reading task templates for what the Ruby side needs: each step's
# handler.callable (to know which handlers to offer the runtime) and handler.method.
# libtasker itself loads, validates and registers the templates; a file that does not parse
# here is skipped, and the runtime reports it.
module TaskerCore
  module Templates
    StepRef = Struct.new(:namespace, :task_name, :version, :step_name, :callable, :method, :file,
                         keyword_init: true)

    module_function

    # Template files under `path` as the runtime finds them: the file itself, or every
    # *.yaml / *.yml below the directory, skipping hidden files and directories; sorted.
    def files(path)
      return [path] if File.file?(path)
      raise Errors::ConfigurationError, "template directory #{path} does not exist" unless File.directory?(path)

      found = []
      walk = lambda do |dir|
        Dir.children(dir).sort.each do |name|
          next if name.start_with?('.')

          full = File.join(dir, name)
          if File.directory?(full)
            walk.call(full)
          elsif File.file?(full) && name.match?(/\.ya?ml\z/)
            found << full
          end
        end
      end
      walk.call(path)
      found.sort
    end

    # Every step of every template under `path`, as StepRefs.
    def steps(path)
      files(path).flat_map { |file| steps_of(file) }
    end

    def steps_of(file)
      doc = YAML.safe_load(File.read(file), aliases: true)
      return [] unless doc.is_a?(Hash) && doc['steps'].is_a?(Array)

      doc['steps'].filter_map do |step|
        next unless step.is_a?(Hash) && step['handler'].is_a?(Hash) && step['handler']['callable']

        StepRef.new(namespace: doc['namespace_name'].to_s, task_name: doc['name'].to_s,
                    version: doc['version'].to_s, step_name: step['name'].to_s,
                    callable: step['handler']['callable'].to_s, method: step['handler']['method']&.to_s,
                    file: file)
      end
    rescue Psych::Exception, SystemCallError
      []
    end
  end
end
